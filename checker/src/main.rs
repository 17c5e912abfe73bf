//! `berth-check`: model-check the berth protocol.

use anyhow::{Context, Result};
use berth_checker::banner::Banner;
use berth_checker::explore::ExploredModel;
use berth_checker::properties::expected_violations;
use berth_checker::run::{BeyondRest, Progress, PropertyStatus, RunReport, StopAt};
use berth_checker::{run, NetworkKind, RunOptions, Scenario, ScenarioConfig, Strategy, Verdict};
use berth_model::Variant;
use clap::{Args, Parser, Subcommand};
use stateright::Model;
use std::process::ExitCode;
use std::time::Duration;

/// Exhaustive model checking of berth's replication protocol.
///
/// Exit codes: 0 = exhaustive and every property as expected; 1 = a property
/// was violated (or a sometimes-property never reached); 2 = bad usage;
/// 3 = no violation found but the run was not exhaustive (timeout, depth
/// bound or simulation).
#[derive(Parser, Debug)]
#[command(name = "berth-check", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check one scenario against every property.
    Check(CheckArgs),
    /// Refute every broken design on the smallest scenario that exposes it, then pass the correct design on the same scenarios.
    Gallery(GalleryArgs),
    /// Run the standard battery: the correct design on every standard scenario, every broken design on the scenario that exposes it; one progress line per run, then a table.
    Verify(VerifyArgs),
    /// Serve Stateright's web Explorer for a scenario; for a broken variant, print the URL that opens its counterexample.
    Explore(ExploreArgs),
}

#[derive(Args, Debug)]
struct ExploreArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Where to serve the Explorer (a loopback address keeps it private).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: std::net::SocketAddr,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Worker threads for each run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Stop at the first run that does not show what it must (the mutation run's oracle).
    #[arg(long)]
    fail_fast: bool,
    /// Only the runs whose flags or variant contain this text.
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// List the runs without running them.
    #[arg(long)]
    list: bool,
    /// Only the runs that take seconds, not minutes (the mutation run's first oracle).
    #[arg(long)]
    quick: bool,
}

#[derive(Args, Debug)]
struct GalleryArgs {
    /// Worker threads for each run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ScenarioArgs {
    /// Which scenario to check [default: replication; with a broken --variant, the scenario that exposes it].
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// Which design to check: `correct`, or a broken variant the checker must refute.
    #[arg(long, default_value = "correct", value_parser = parse_variant)]
    variant: Variant,
    /// Number of clients competing for the same cabin, 0 to 4 [default: 2 for replication, 1 for failover and cutover]. With 0, nobody books: the failovers or moves alone, and the properties that need a booking are not stated.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=4))]
    clients: Option<u8>,
    /// How the network may treat messages [default: unordered; for variant no-idempotency without --scenario, unordered-duplicating].
    #[arg(long, value_enum)]
    network: Option<NetworkKind>,
    /// How many servers may be crashed at the same time (replicas; in failover the controller too); a crashed server may recover from its saved state [default: 0 for replication, 1 for failover].
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=3))]
    crashes: Option<u8>,
    /// Failover scenario: how many placement changes (each a new epoch) the controller may make [default: 1; for variant no-fencing without --scenario, 2].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    failovers: Option<u8>,
    /// How many times a client resends one request on its retry timer (each retry multiplies the state space).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    retries: u8,
    /// Holds expire: each hold's expiry may fire at any moment, ending it through the log.
    #[arg(long)]
    expiring_holds: bool,
    /// Add a change-stream subscriber following the bucket (checks `change stream exact`).
    #[arg(long)]
    stream: bool,
    /// A follower that is behind asks to be caught up (a recovering replica tells each leader its commit, a gap is answered, the leader resends on any such sign), as the runtime does.
    #[arg(long)]
    catch_up: bool,
    /// Keep at most this many committed entries in each log, folding older ones into the committed state (followers behind the log's start get a snapshot).
    #[arg(long, value_name = "ENTRIES", value_parser = clap::value_parser!(u16).range(0..))]
    retained_entries: Option<u16>,
    /// Send snapshots in chunks of at most this many units plus outcomes (the receiver installs a complete one).
    #[arg(long, value_name = "ITEMS", value_parser = clap::value_parser!(u16).range(1..))]
    snapshot_chunk: Option<u16>,
    /// Run the protocol with the runtime's own settings (leader resends, re-sent fences, commit announcements, appends of one entry, batches of one bucket, catch-up, and where the scenario fails over the probe detector), and check liveness: once faults stop, followers catch up, failovers finish, clients are answered.
    #[arg(long)]
    runtime_settings: bool,
    /// The second client holds the cabin, then confirms that hold without waiting for the answer (a client that does not follow the protocol): a confirm of a refused hold must be refused as never matching.
    #[arg(long)]
    blind_confirm: bool,
    /// In a move, the operator's request arrives twice, as `berth move` resends it until the map shows the move: during the move, or after it, it must start nothing.
    #[arg(long)]
    resent_move: bool,
    /// In a move, the operator then asks for the bucket back on the group it started on: the destination of the second move holds a sealed copy of the bucket from before the first, at an older epoch. Turns catch-up on, as the runtime runs it.
    #[arg(long)]
    move_back: bool,
    /// Failover scenario: a planned failover — the operator asks for the failover of the bucket (`berth failover`) while its leader serves, and no failure detector runs.
    #[arg(long)]
    planned_failover: bool,
    /// Add an outsider that sends, in its own name, what only the controller or the bucket's leader may send (a fence, a placement, a move order, an append, an acknowledgement; in a move, a snapshot): no replica may act on it.
    #[arg(long)]
    outsider: bool,
    /// Add a support client that asks, once, what became of the first client's hold (a token query).
    #[arg(long)]
    query: bool,
    /// How many times in a row a leader resends appends without progress (the runtime's setting alone).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    leader_resends: u8,
    /// The controller resends an unanswered fence when its timer fires again, a subscriber an unanswered pull (the runtime's setting alone).
    #[arg(long)]
    resend_unanswered: bool,
    /// Leaders tell caught-up followers each commit at once (the runtime's setting alone).
    #[arg(long)]
    announce_commits: bool,
    /// The most entries one append carries (the runtime's setting alone).
    #[arg(long, value_name = "ENTRIES", value_parser = clap::value_parser!(u16).range(1..))]
    max_append_entries: Option<u16>,
    /// The most buckets one controller message names (the runtime's setting alone).
    #[arg(long, value_name = "BUCKETS", value_parser = clap::value_parser!(u16).range(1..))]
    max_batch: Option<u16>,
    /// In scenarios that fail over, the probe detector (one miss, bounded rounds) instead of suspicion at any moment.
    #[arg(long)]
    probes: bool,
    /// Replication and failover: sync followers in the group, 1 or 2 (with two, a commit waits for both and either may be promoted or replaced).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    sync_followers: Option<u8>,
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Exploration strategy.
    #[arg(long, value_enum, default_value_t = Strategy::Bfs)]
    strategy: Strategy,
    /// Worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Stop after this many seconds (the run is then not exhaustive).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Explore at most this many steps deep (the run is then not exhaustive if the bound is hit).
    #[arg(long, value_name = "STEPS")]
    depth: Option<usize>,
    /// Seed for `--strategy simulation`.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Stop soon after the first violated property. By default the correct design is explored exhaustively, and a broken variant until the property it must break is violated.
    #[arg(long, conflicts_with = "explore_all")]
    first_violation: bool,
    /// Explore every reachable state even after violations, to list every property a variant breaks.
    #[arg(long)]
    explore_all: bool,
}

fn parse_variant(text: &str) -> Result<Variant, String> {
    text.parse()
}

impl ScenarioArgs {
    /// The configuration the flags select: the named scenario with its
    /// defaults, or without `--scenario` the one that exposes the variant
    /// (the replication scenario for the correct design); then every flag
    /// given overrides.
    fn config(&self) -> ScenarioConfig {
        let base = match self.scenario {
            Some(scenario) => ScenarioConfig {
                variant: self.variant,
                ..ScenarioConfig::new(scenario)
            },
            None => ScenarioConfig::exposing(self.variant),
        };
        ScenarioConfig {
            clients: self.clients.map_or(base.clients, usize::from),
            network: self.network.unwrap_or(base.network),
            crashes: self.crashes.map_or(base.crashes, usize::from),
            failovers: self.failovers.unwrap_or(base.failovers),
            retries: self.retries,
            expiring_holds: self.expiring_holds,
            stream: self.stream || base.stream,
            catch_up: self.catch_up,
            retained_entries: self.retained_entries.map(usize::from),
            snapshot_chunk: self.snapshot_chunk.map(usize::from),
            runtime_settings: self.runtime_settings || base.runtime_settings,
            blind_confirm: self.blind_confirm,
            resent_move: self.resent_move,
            move_back: self.move_back,
            planned_failover: self.planned_failover,
            outsider: self.outsider,
            query: self.query,
            leader_resends: self.leader_resends,
            resend_unanswered: self.resend_unanswered,
            announce_commits: self.announce_commits,
            max_append_entries: self.max_append_entries.map(usize::from),
            max_batch: self.max_batch.map(usize::from),
            probes: self.probes,
            sync_followers: self.sync_followers.map_or(base.sync_followers, usize::from),
            ..base
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => match check(&args) {
            Ok(verdict) => ExitCode::from(verdict.exit_code() as u8),
            Err(error) => {
                eprintln!("berth-check: {error:#}");
                ExitCode::from(2)
            }
        },
        Command::Gallery(args) => gallery(&args),
        Command::Verify(args) => verify(&args),
        Command::Explore(args) => match explore(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("berth-check: {error:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// Runs the standard battery (or the part `--only` selects) and prints its
/// table or JSON; exit 0 when every run shows what it must, 1 otherwise.
fn verify(args: &VerifyArgs) -> ExitCode {
    use berth_checker::verify::{battery, quick_battery, verify, Expect};
    let all = if args.quick {
        quick_battery()
    } else {
        battery()
    };
    let checks: Vec<_> = all
        .into_iter()
        .filter(|check| {
            args.only.as_deref().is_none_or(|text| {
                check.config.flags().contains(text)
                    || check.config.variant.to_string().contains(text)
            })
        })
        .collect();
    let expect_text = |expect: &Expect| match expect {
        Expect::Pass => "pass".to_owned(),
        Expect::Refuted(properties) => format!("refuted by `{}`", properties.join("` or `")),
    };
    if args.list {
        for check in &checks {
            println!(
                "{:<16} {:<60} {}",
                check.config.variant.to_string(),
                check.config.flags(),
                expect_text(&check.expect)
            );
        }
        return ExitCode::SUCCESS;
    }
    let total = checks.len();
    let report = verify(
        &checks,
        usize::from(args.threads),
        args.fail_fast,
        |index, check| {
            eprintln!(
                "[{}/{total}] {} on {}: must {} ({})",
                index + 1,
                check.config.variant,
                check.config.flags(),
                match &check.expect {
                    Expect::Pass => "pass".to_owned(),
                    refuted => format!("be {}", expect_text(refuted)),
                },
                check.why
            )
        },
        |row| {
            eprintln!(
                "      {} — {} states, {:.1}s{}{}",
                if row.passes { "ok" } else { "FAILED" },
                row.unique_states,
                row.seconds,
                match row.beyond_rest {
                    BeyondRest::Holds => ", liveness beyond rest checked",
                    BeyondRest::TooLarge => ", liveness beyond rest NOT checked (too many states)",
                    _ => "",
                },
                if row.failed.is_empty() {
                    String::new()
                } else {
                    format!(", violated or unreached: {}", row.failed.join(", "))
                }
            )
        },
    );
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("berth-check: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!(
            "{:<16} {:<58} {:>10} {:>9}  {:<6} must",
            "variant", "scenario", "states", "seconds", "result"
        );
        for row in &report.rows {
            println!(
                "{:<16} {:<58} {:>10} {:>9.1}  {:<6} {}",
                row.variant.to_string(),
                row.scenario,
                row.unique_states,
                row.seconds,
                if row.passes { "ok" } else { "FAILED" },
                expect_text(&row.expect)
            );
        }
        let unchecked: Vec<&str> = report
            .rows
            .iter()
            .filter(|row| row.beyond_rest == BeyondRest::TooLarge)
            .map(|row| row.scenario.as_str())
            .collect();
        if !unchecked.is_empty() {
            println!(
                "\nliveness beyond rest not checked (more states than its graph keeps): {}",
                unchecked.join("; ")
            );
        }
        println!(
            "\n{} of {} runs as they must, {:.0} s in all",
            report.rows.iter().filter(|row| row.passes).count(),
            total,
            report.seconds
        );
    }
    if report.passes {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Finds the variant's counterexample (if it has one), prints the URLs, then
/// serves the Explorer until the process is stopped.
fn explore(args: &ExploreArgs) -> Result<()> {
    let scenario = args.scenario.config();
    // Stateright's server panics if it cannot bind: check first, so that a
    // taken or foreign address is a clear error.
    std::net::TcpListener::bind(args.addr)
        .with_context(|| format!("cannot serve the Explorer on {}", args.addr))?;
    let base = format!("http://{}/", args.addr);
    let expected = expected_violations(scenario.variant);
    let mut lines = vec![format!(
        "Explorer for {} (variant {}): {base}",
        scenario.flags(),
        scenario.variant
    )];
    let mut banner = Banner {
        title: format!("{} (variant {})", scenario.flags(), scenario.variant),
        violation: None,
        note: "every state's view begins with the always-properties it violates, if any".to_owned(),
    };
    if !expected.is_empty() {
        let report = run(
            &scenario,
            &RunOptions {
                stop_at: StopAt::AnyOf(expected.to_vec()),
                ..RunOptions::default()
            },
            |_| {},
        );
        let found = expected.iter().find_map(|name| {
            report
                .property(name)
                .filter(|p| p.status == PropertyStatus::Violated)
        });
        match found.and_then(|p| p.path.as_ref().map(|path| (p, path))) {
            Some((property, path)) => {
                let steps = property.trace.as_ref().map_or(0, Vec::len);
                lines.push(format!(
                    "counterexample of `{}` ({steps} steps): {base}#/steps/{path}",
                    property.name,
                ));
                if let Some(explanation) = &property.explanation {
                    lines.push(format!("  what broke: {explanation}"));
                }
                banner.violation = Some((
                    property.name.to_string(),
                    property.explanation.clone().unwrap_or_default(),
                ));
                banner.note = format!(
                    "the shortest counterexample: {steps} steps, opened by the URL `berth-check explore` printed; the view of its last state begins with the violation"
                );
            }
            None => {
                let line = format!(
                    "no counterexample of `{}` in {}: the variant is exposed elsewhere",
                    expected.join("` / `"),
                    scenario.flags(),
                );
                banner.note = line.clone();
                lines.push(line);
            }
        }
    }
    for line in lines {
        println!("{line}");
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    // Stateright's Explorer on a private port, behind the banner's proxy.
    let inner = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("cannot find a free port for the Explorer")?;
    let model = ExploredModel::new(scenario.build(), scenario.properties());
    let explorer = std::thread::spawn(move || {
        model.checker().serve(inner);
    });
    berth_checker::banner::serve(args.addr, inner, || !explorer.is_finished(), &banner)
}

fn gallery(args: &GalleryArgs) -> ExitCode {
    let report = berth_checker::gallery::gallery(usize::from(args.threads), |line| {
        eprintln!("  … {line}");
    });
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("berth-check: cannot encode the report: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!(
            "{:<18} {:<68} {:<27} {:<8} {:>5} {:>9} {:>7}",
            "variant", "design", "refuted by", "refuted", "steps", "states", "seconds"
        );
        for row in &report.variants {
            println!(
                "{:<18} {:<68} {:<27} {:<8} {:>5} {:>9} {:>7.2}",
                row.variant.name(),
                row.design,
                // The expected property that fell, or all that should have.
                row.expected
                    .iter()
                    .find(|name| row.violated.contains(name))
                    .map_or_else(|| row.expected.join(" / "), |name| (*name).to_owned()),
                if row.refuted { "yes" } else { "NO" },
                row.trace_length.map_or("-".to_owned(), |n| n.to_string()),
                row.unique_states,
                row.seconds
            );
        }
        println!();
        println!(
            "{:<60} {:<22} {:>9} {:>7}",
            "correct design on", "result", "states", "seconds"
        );
        for row in &report.correct {
            println!(
                "{:<60} {:<22} {:>9} {:>7.2}",
                row.scenario,
                match (row.passes, row.strategy) {
                    (true, Strategy::Simulation) => "no violation (walks)",
                    (true, _) => "PASS",
                    (false, _) => "FAIL",
                },
                row.unique_states,
                row.seconds
            );
        }
        println!();
        println!(
            "gallery: {}",
            if report.passes() {
                "PASS (every broken design refuted, the correct design holds)"
            } else {
                "FAIL"
            }
        );
    }
    ExitCode::from(if report.passes() { 0 } else { 1 })
}

fn check(args: &CheckArgs) -> Result<Verdict> {
    let scenario = args.scenario.config();
    if scenario.sync_followers != 1
        && !matches!(
            scenario.scenario,
            Scenario::Replication | Scenario::Failover
        )
    {
        anyhow::bail!(
            "--sync-followers is for the replication and failover scenarios (the {} scenario has one sync follower per group)",
            scenario.scenario
        );
    }
    let options = RunOptions {
        strategy: args.strategy,
        threads: usize::from(args.threads),
        timeout: args.timeout.map(Duration::from_secs),
        max_depth: args.depth,
        seed: args.seed,
        stop_at: if args.first_violation {
            StopAt::FirstViolation
        } else if args.explore_all || expected_violations(scenario.variant).is_empty() {
            StopAt::Never
        } else {
            StopAt::AnyOf(expected_violations(scenario.variant).to_vec())
        },
        shortest: true,
    };
    eprintln!(
        "checking scenario {} (variant {}, {} clients, {} network, {} crashes, {} retries{}) with {:?}",
        scenario.scenario,
        scenario.variant,
        scenario.clients,
        scenario.network,
        scenario.crashes,
        scenario.retries,
        if scenario.scenario == Scenario::Failover {
            format!(", {} failovers", scenario.failovers)
        } else {
            String::new()
        },
        options.strategy
    );
    let report = run(&scenario, &options, |progress: Progress| {
        let seconds = progress.elapsed.as_secs_f64();
        if let Some((property, steps, upper)) = progress.searching {
            eprintln!(
                "  … searching for the shortest counterexample of `{property}`: {steps} of at most {upper} steps, {seconds:.1}s"
            );
            return;
        }
        eprintln!(
            "  … {} unique / {} total states, depth {}, {:.1}s, {:.0} states/s",
            progress.unique_states,
            progress.total_states,
            progress.max_depth,
            seconds,
            if seconds > 0.0 {
                progress.total_states as f64 / seconds
            } else {
                0.0
            }
        );
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(report.verdict())
}

fn print_report(report: &RunReport) {
    println!(
        "{} unique states, {} total, max depth {}, {:.2}s, {:.0} states/s",
        report.unique_states,
        report.total_states,
        report.max_depth,
        report.seconds,
        report.states_per_second
    );
    println!(
        "exploration: {}",
        match report.stop_reason {
            berth_checker::StopReason::Exhausted => "exhaustive (every reachable state visited)",
            berth_checker::StopReason::Timeout => "NOT exhaustive: the timeout cut the run short",
            berth_checker::StopReason::DepthBound => "NOT exhaustive: the depth bound was reached",
            berth_checker::StopReason::Discovery =>
                "stopped soon after the violation it looked for (other always-properties not refuted; --explore-all lists every violation)",
            berth_checker::StopReason::Simulation => "NOT exhaustive: random simulation",
        }
    );
    if let Some(beyond_rest) = report.beyond_rest.describe() {
        println!("liveness beyond rest: {beyond_rest}");
    }
    println!("properties:");
    for property in &report.properties {
        println!(
            "  {:<10} {:<12} {}",
            property.expectation,
            property.status.label(),
            property.name
        );
    }
    for property in &report.properties {
        if let Some(trace) = &property.trace {
            println!();
            println!("VIOLATION of `{}`: {}", property.name, property.meaning);
            if let Some(explanation) = &property.explanation {
                println!("  what broke: {explanation}");
            }
            println!("  counterexample ({} steps):", trace.len());
            for line in trace {
                println!("  {line}");
            }
            if let Some(crash_trace) = &property.crash_trace {
                println!(
                    "  no crash was needed (a false suspicion suffices); the shortest counterexample with the leader really down ({} steps):",
                    crash_trace.len()
                );
                for line in crash_trace {
                    println!("  {line}");
                }
            }
        }
    }
    let verdict = report.verdict();
    println!();
    println!(
        "verdict: {}",
        match verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Incomplete => "INCOMPLETE (no violation found in the states explored)",
        }
    );
    let variant = report.scenario.variant;
    let exposed = expected_violations(variant).iter().any(|name| {
        report
            .property(name)
            .is_some_and(|p| p.status == PropertyStatus::Violated)
    });
    if variant != Variant::Correct && !exposed {
        let exposing = ScenarioConfig::exposing(variant);
        if exposing.flags() != report.scenario.flags() {
            println!(
                "note: {} cannot expose variant {variant}; it breaks `{}` with {}",
                report.scenario.flags(),
                expected_violations(variant).join("` / `"),
                exposing.flags(),
            );
        }
    }
}
