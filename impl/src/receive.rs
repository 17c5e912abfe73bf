//! The receive side of the runtime: what a datagram that arrived is, who
//! sent it, and whether they may.
//!
//! Every datagram is sealed and opened by [`crate::auth`]: a member
//! believes a member's message only under the member key, an outsider's
//! (client, operator) only the requests its key allows, and answers an
//! outsider under the key it asked with. What is dropped — oversize,
//! undecodable, bad MAC, replayed, unexpected — is counted by reason and
//! logged a few times per window ([`crate::guard`]).
//!
//! This is the runtime's whole attack surface, kept apart from the loop
//! ([`crate::runtime`]) so that it can be read, and fuzzed
//! ([`crate::fuzz`]), on its own. It decides nothing about the protocol:
//! what it believes goes to the actor through `Runtime::step`, and the
//! requests outside the protocol to [`crate::services`].

use crate::auth::{self, KeyKind, Refusal};
use crate::guard::DropReason;
use crate::runtime::Runtime;
use crate::wire::{self, Datagram};
use berth_model::Msg;
use stateright::actor::Id;
use std::net::SocketAddr;

/// Outsiders remembered for answers at most (an older one is forgotten:
/// its answers are dropped and its retry introduces it again).
const OUTSIDERS: usize = 4096;

/// Whether an outsider holding the `kind` key may send `msg` to a member:
/// clients make requests, queries and reads and fetch the map; operators
/// also move buckets and fail them over. Everything else is member-only.
fn permitted(kind: KeyKind, msg: &Msg) -> bool {
    let client = matches!(
        msg,
        Msg::Request { .. } | Msg::Query { .. } | Msg::FetchMap | Msg::Read { .. }
    );
    match kind {
        KeyKind::Member => true,
        KeyKind::Operator => client || matches!(msg, Msg::MoveBucket { .. } | Msg::Failover { .. }),
        KeyKind::Client => client,
    }
}

/// Whether `msg` is an answer a member sends an outsider (what a client
/// or operator process accepts).
fn answer(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Reply(_)
            | Msg::Redirect { .. }
            | Msg::NotDecided { .. }
            | Msg::Map(_)
            | Msg::MoveRefused { .. }
            | Msg::ReadReply(_)
            | Msg::ReadBehind { .. }
    )
}

impl Runtime {
    /// Handles one received datagram from `from`: opens it, decides who
    /// sent it and whether they may, and runs what it carries. Whatever the
    /// bytes, this neither panics nor allocates beyond their size: what is
    /// not believed is counted and dropped.
    pub fn handle(&mut self, bytes: &[u8], from: SocketAddr) {
        if bytes.len() > wire::MAX_DATAGRAM {
            let length = bytes.len();
            return self.drops.drop(DropReason::Oversize, || {
                format!("{length} bytes from {from}")
            });
        }
        let (header, payload) = match auth::open(&self.auth.keys, bytes) {
            Ok(opened) => opened,
            Err(refusal) => {
                let (reason, what) = match refusal {
                    Refusal::Malformed => (DropReason::Undecodable, "not berth's format"),
                    Refusal::BadMac => (DropReason::BadMac, "its MAC does not verify"),
                };
                let length = bytes.len();
                return self
                    .drops
                    .drop(reason, || format!("{length} bytes from {from}: {what}"));
            }
        };
        if header.recipient != self.auth.sender.id {
            return self.drops.drop(DropReason::Unexpected, || {
                format!(
                    "from {from}: addressed to {}, not to this process",
                    header.recipient
                )
            });
        }
        // Who sent it: a member by the id its key vouches for; an outsider
        // by the address to answer (its key says what it may ask).
        let member_sender = header.kind == KeyKind::Member;
        let src = if self.auth.is_member() && !member_sender {
            match from {
                SocketAddr::V4(addr) if !addr.ip().is_unspecified() => Id::from(addr),
                _ => {
                    return self.drops.drop(DropReason::Unexpected, || {
                        format!("an outsider at {from}: berth answers IPv4 only")
                    })
                }
            }
        } else {
            let id = Id::from(header.sender as usize);
            if !self.config.is_member(id)
                || id == self.id
                || (!self.auth.is_member() && header.kind != self.auth.sender.kind)
            {
                return self.drops.drop(DropReason::Unexpected, || {
                    format!(
                        "from {from}: sender {} under the {} key is not a member",
                        header.sender, header.kind
                    )
                });
            }
            id
        };
        if !self.auth.replay.admit(&header) {
            return self.drops.drop(DropReason::Replay, || {
                format!("from {from} (sender {})", header.sender)
            });
        }
        let datagram = match wire::decode(payload) {
            Ok(datagram) => datagram,
            Err(reason) => {
                return self
                    .drops
                    .drop(DropReason::Undecodable, || format!("from {from}: {reason}"))
            }
        };
        let outsider = self.auth.is_member() && !member_sender;
        if outsider {
            if self.outsiders.len() >= OUTSIDERS && !self.outsiders.contains_key(&src) {
                if let Some(old) = self.outsiders.keys().next().copied() {
                    self.outsiders.remove(&old);
                }
            }
            self.outsiders.insert(src, (header.kind, header.sender));
        }
        self.dispatch(datagram, src, from, header.kind, outsider);
    }

    /// Runs what an opened datagram carries, from `src` (an outsider if
    /// `outsider`, under the `kind` key).
    fn dispatch(
        &mut self,
        datagram: Datagram,
        src: Id,
        from: SocketAddr,
        kind: KeyKind,
        outsider: bool,
    ) {
        match datagram {
            // Outside the protocol: answered by the runtime's services, to
            // whom may ask (a status request only at a member, a projection
            // query only at the projector).
            Datagram::StatusRequest if self.auth.is_member() => self.report_status(src),
            Datagram::Search { trip } if self.projections.is_some() => {
                self.answer_search(src, &trip)
            }
            Datagram::Trips {
                customer,
                after,
                wait_ms,
            } if self.projections.is_some() => self.hold_trips(src, customer, after, wait_ms),
            Datagram::Protocol(msgs) => {
                for msg in msgs {
                    let allowed = if !self.auth.is_member() {
                        answer(&msg)
                    } else {
                        !outsider || permitted(kind, &msg)
                    };
                    if !allowed || !wire::within(&msg, self.config.buckets) {
                        let what = msg.to_string();
                        self.drops.drop(DropReason::Unexpected, || {
                            format!("from {from} under the {kind} key: {what}")
                        });
                        continue;
                    }
                    self.step(src, msg);
                }
            }
            other => {
                let what = match other {
                    Datagram::StatusRequest => "a status request to a non-member",
                    Datagram::Search { .. } | Datagram::Trips { .. } => {
                        "a projection query to a member that is not the projector"
                    }
                    _ => "an unrequested answer",
                };
                self.drops
                    .drop(DropReason::Unexpected, || format!("from {from}: {what}"));
            }
        }
    }

    /// Datagrams dropped so far, by reason.
    pub fn drops(&self) -> &crate::guard::Drops {
        &self.drops.drops
    }
}
