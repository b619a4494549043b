//! Standard output that may be a pipe closed early (`noncectl jobs | head -1`,
//! `noncectl search --json | head -c1`): `println!` panics then ("failed printing to stdout").
//! A command's output ends quietly instead: the rest of what it prints is dropped, and it
//! exits with the code it would have had (a search that exhausted its range still says 1).
//! The daemon's lines (EMF metrics) are dropped with a warning.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write found stdout closed: nothing more is tried.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line (and flushes: a pipe's reader sees each line as it is written).
pub fn write_line(args: fmt::Arguments<'_>) -> io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Err(io::ErrorKind::BrokenPipe.into());
    }
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes text as it is (no newline added).
pub fn write_text(text: &str) -> io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Err(io::ErrorKind::BrokenPipe.into());
    }
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// A command's output: a closed stdout makes the rest of the output quietly dropped; any
/// other write error (a full disk) ends the process with one line on stderr and exit 1.
pub fn or_exit(written: io::Result<()>) {
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => CLOSED.store(true, Ordering::Relaxed),
        Err(e) => {
            let _ = writeln!(io::stderr(), "cannot write to standard output: {e}");
            std::process::exit(1)
        }
    }
}

/// `println!` for commands: see [`or_exit`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::or_exit($crate::output::write_line(format_args!("")))
    };
    ($($arg:tt)*) => {
        $crate::output::or_exit($crate::output::write_line(format_args!($($arg)*)))
    };
}
