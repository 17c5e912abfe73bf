//! Action tokens as people pass them around: `T<client>.<seq>@b<bucket>`.
//!
//! A token alone names an action; the bucket beside it says where to ask
//! about it, so that a later `berth token` or `berth confirm` needs nothing
//! else. Both the client's answers and the projector's trips print tokens
//! this way, which is why this sits apart from either.

use anyhow::{Context, Result};
use berth_model::{Bucket, Token};

/// A token as people pass it around: `T<client>.<seq>@b<bucket>`, so that
/// a later `berth token` or `berth confirm` knows where to ask.
pub fn token_text(token: Token, bucket: Bucket) -> String {
    format!("{token}@b{}", bucket.0)
}

/// Parses `token_text`'s form.
pub fn parse_token(text: &str) -> Result<(Token, Bucket)> {
    let (token, bucket) = text
        .split_once("@b")
        .with_context(|| format!("{text:?} is not a berth token (expected T<client>.<seq>@b<bucket>, as printed by hold and book)"))?;
    let token: Token = token
        .parse()
        .map_err(|error| anyhow::anyhow!("{text:?} is not a berth token: {error}"))?;
    let bucket: u32 = bucket
        .parse()
        .with_context(|| format!("{text:?} is not a berth token: bad bucket number"))?;
    Ok((token, Bucket(bucket)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: printed tokens parse back; malformed ones get a reason.
    #[test]
    fn tokens_round_trip_through_text() {
        let token = Token {
            client: 123,
            seq: 4,
        };
        let text = token_text(token, Bucket(17));
        assert_eq!(text, "T123.4@b17");
        assert_eq!(parse_token(&text).unwrap(), (token, Bucket(17)));
        assert!(parse_token("T123.4").is_err());
        assert!(parse_token("X@b1").is_err());
        assert!(parse_token("T1.2@bx").is_err());
    }
}
