//! Where the planner's start-up histories are kept: the CLI's cache
//! (`~/.cache/nonce-cloud/startup.json`, beside `calibration.json`) and the daemon's state
//! directory (`startup.json`, beside its journal), in one format ([`nonce_core::startup::StartupBook`] as JSON).
//! Each finished job adds its workers' start-ups under its launcher; `estimate` and
//! `search --confidence` plan with the p95 of the last 200.

use nonce_core::startup::StartupBook;
use std::path::Path;
use std::time::Duration;

/// The file name, in the cache directory or the daemon's state directory.
pub const FILE: &str = "startup.json";

/// The book at `path`; empty when there is none. A file that does not parse is ignored (with a
/// warning) rather than trusted or fatal: the planner then uses the defaults.
pub fn load(path: &Path) -> StartupBook {
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<StartupBook>(&text) {
            Ok(book) => book.sanitized(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable start-up history");
                StartupBook::default()
            }
        },
        Err(_) => StartupBook::default(),
    }
}

/// Writes the book atomically (a temporary file renamed over the old one), so a crash or a
/// concurrent writer never leaves a torn file; concurrent writers may lose each other's samples.
/// The file is mode 0600 whatever the umask: in the daemon's state directory it is the
/// daemon's alone, like the journal beside it.
pub fn save(path: &Path, book: &StartupBook) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string(book).map_err(|e| e.to_string())?;
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    write_private(&tmp, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))
}

/// Writes `bytes` to a new file at `path` (a temporary one, renamed into place after), mode
/// 0600: set on the open file, since a umask only narrows a new file's mode. Whatever was at
/// `path` (a crash's leftover, or a symlink planted to be written through) is removed first,
/// and the file is created anew, never opened through a link.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)
}

/// Adds one job's start-ups (and its launches that never started, censored) under `launcher`
/// to the book at `path`.
pub fn record(
    path: &Path,
    launcher: &str,
    startups: &[Duration],
    unstarted: &[Duration],
) -> Result<(), String> {
    if startups.is_empty() && unstarted.is_empty() {
        return Ok(());
    }
    let mut book = load(path);
    book.record(launcher, startups, unstarted);
    save(path, &book)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nonce_core::startup::StartupSource;

    #[test]
    fn records_accumulate_across_loads_and_garbage_is_ignored() {
        let dir = std::env::temp_dir().join(format!("nonce-startup-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join(FILE);
        assert_eq!(load(&path), StartupBook::default(), "no file: no history");
        record(&path, "process", &[Duration::from_millis(30), Duration::from_millis(10)], &[])
            .expect("saves");
        record(&path, "process", &[Duration::from_millis(20)], &[]).expect("saves");
        let e = load(&path).estimate("process").expect("known");
        assert_eq!(e.seconds, 0.03);
        assert_eq!(e.source, StartupSource::Measured { percentile: 95, samples: 3 });
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("saved").permissions().mode() & 0o7777;
        assert_eq!(
            format!("{mode:04o}"),
            "0600",
            "the history is the daemon's (or the user's) alone, whatever the umask"
        );
        std::fs::write(&path, "{not json").expect("write");
        assert_eq!(load(&path).estimate("process").map(|e| e.source), Some(StartupSource::Default));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
