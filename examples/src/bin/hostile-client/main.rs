//! A hostile Wayland client, for testing the sample compositor (issue 26): for `--seconds S`
//! it sends random sequences of well-formed requests on wl_surface, wl_buffer, wl_shm (pools
//! and buffers), linux-dmabuf (params with random sizes, formats, modifiers, offsets, strides
//! and plane indices; fds that are dma-bufs shared with its other connection, memfds or
//! pipes; `create` and `create_immed`; feedback objects) and xdg-shell (xdg_surface,
//! xdg_toplevel: acks of serials never sent, titles, sizes, parents, destroy order
//! violations), and requests on objects it has already destroyed (written to the socket by
//! hand: wayland-client refuses to send them). It keeps two connections open and sends a
//! batch of 1 to 24 requests on one of them, then a round trip, so a protocol error always
//! shows up after the same request. A connection the compositor ends (a protocol error is
//! expected and counted) is replaced by a new one.
//!
//! The run is a function of `--seed N` (printed first; the default is the clock) and the
//! compositor's answers: the same seed against the same compositor sends the same requests.
//! `--trace` prints each request (WAYLAND_DEBUG=1 shows the wire). By default it never shows
//! a window (it never commits a buffer to a toplevel after acking its configure, except
//! before that, which the compositor must refuse), so a well-behaved client beside it keeps
//! the screen; `--map` lifts that.
//!
//! It prints a summary line after every 20th connection that ended (the compositor may kill
//! it when its test is done) and at the end: connections, requests, how connections ended (protocol errors by
//! interface and code). Exit status 0 after `--seconds`; 1 if the compositor went away (no
//! connection possible) or left a round trip unanswered for 30 s.

mod rng;
mod session;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rng::Rng;
use session::{Dmabufs, End, Session};

/// Command line.
struct Options {
    seed: u64,
    seconds: u64,
    map: bool,
    trace: bool,
}

fn parse_options() -> Result<Options, String> {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut o = Options {
        seed: clock % 1_000_000,
        seconds: 10,
        map: false,
        trace: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seed" => o.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--seconds" => o.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--map" => o.map = true,
            "--trace" => o.trace = true,
            _ => {
                return Err(format!(
                    "unknown argument {a:?}\nusage: hostile-client [--seed N] [--seconds S] [--map] [--trace]"
                ))
            }
        }
    }
    Ok(o)
}

/// What the run did.
#[derive(Default)]
struct Tally {
    connections: u64,
    requests: u64,
    raw: u64,
    batches: u64,
    /// Protocol errors by "interface code".
    errors: BTreeMap<String, u64>,
    /// Connections the compositor closed without a protocol error.
    closed: u64,
    /// Connections the client dropped itself.
    dropped: u64,
    stalls: u64,
}

impl Tally {
    fn line(&self, seed: u64) -> String {
        let errors: u64 = self.errors.values().sum();
        let by_interface = self
            .errors
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "seed {seed}: {} connections, {} requests ({} on destroyed objects, by hand) in {} batches, \
             {errors} protocol errors [{by_interface}], {} closed without an error, {} dropped by the client, {} stalls",
            self.connections, self.requests, self.raw, self.batches, self.closed, self.dropped, self.stalls
        )
    }

    /// Counts a connection that ended.
    fn end(&mut self, session: &Session, end: Option<End>) {
        self.requests += session.sent.requests;
        self.raw += session.sent.raw;
        match end {
            Some(End::ProtocolError(interface, code, message)) => {
                log::debug!("protocol error {interface} {code}: {message}");
                *self
                    .errors
                    .entry(format!("{interface} {code}"))
                    .or_default() += 1;
            }
            Some(End::Closed(why)) => {
                log::debug!("closed: {why}");
                self.closed += 1;
            }
            Some(End::Stalled) => self.stalls += 1,
            None => self.dropped += 1,
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("hostile-client: {e}");
            return ExitCode::from(2);
        }
    };
    let seed = options.seed;
    println!("hostile-client: seed {seed}");
    let mut rng = Rng::new(seed);
    let dmabufs = Dmabufs::allocate(&mut rng);
    let mut tally = Tally::default();
    let mut sessions: [Option<Session>; 2] = [None, None];
    let end = Instant::now() + Duration::from_secs(options.seconds);
    let mut failed = None;
    while Instant::now() < end {
        let slot = rng.below(2) as usize;
        let session = match &mut sessions[slot] {
            Some(s) => s,
            empty => match Session::connect(options.map, options.trace) {
                Ok(s) => {
                    tally.connections += 1;
                    empty.insert(s)
                }
                Err(e) => {
                    failed = Some(format!("connection {}: {e}", tally.connections + 1));
                    break;
                }
            },
        };
        for _ in 0..rng.range(1, 24) {
            session.step(&mut rng, &dmabufs);
        }
        tally.batches += 1;
        // Now and then the client hangs up itself, with everything still alive.
        let outcome = match session.sync(Duration::from_secs(30)) {
            Ok(()) if rng.chance(2) => Some(None),
            Ok(()) => None,
            Err(e) => Some(Some(e)),
        };
        if let Some(why) = outcome {
            let stalled = matches!(why, Some(End::Stalled));
            let session = sessions[slot].take().expect("in use");
            tally.end(&session, why);
            drop(session);
            let ended = tally.connections - sessions.iter().flatten().count() as u64;
            if ended.is_multiple_of(20) {
                println!("hostile-client: so far: {}", tally.line(seed));
            }
            if stalled {
                failed = Some("the compositor left a round trip unanswered for 30 s".into());
                break;
            }
        }
    }
    for session in sessions.iter_mut().filter_map(Option::take) {
        tally.end(&session, None);
    }
    println!("hostile-client: summary: {}", tally.line(seed));
    match failed {
        Some(e) => {
            eprintln!("hostile-client: {e}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}
