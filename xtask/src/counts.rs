//! What one buffer executes, counted instead of timed: user-space instructions (callgrind)
//! and system calls (strace) of `cenalloc-bench --repeat CASE N`, for the raw floor and
//! cenalloc side by side. Counts do not drift with the host's load as timings do.
//!
//! Instructions are collected in the repeat loop only (`--toggle-collect`), 1000 buffers; a
//! system call count per buffer is the difference between a 2000-buffer and a 1000-buffer
//! run divided by 1000, so start-up calls cancel out.

use std::collections::BTreeMap;
use std::path::Path;

use crate::vm::shell_quote;
use crate::Result;

/// The cases, as pairs (what, raw floor case, cenalloc case) of `cenalloc-bench --repeat`.
const PAIRS: [(&str, &str, &str); 3] = [
    (
        "display-only (vkms allocates)",
        "raw-display-only",
        "cenalloc-display-only",
    ),
    (
        "display-only, allocate_and_import",
        "raw-display-only",
        "allocate-and-import-display-only",
    ),
    ("CPU-written (system heap)", "raw-heap", "cenalloc-heap"),
];

const BUFFERS: u64 = 1000;

/// Guest shell commands that leave callgrind and strace outputs in `share`.
pub fn guest_script(bench: &Path, share: &Path) -> String {
    let bench = shell_quote(&bench.to_string_lossy());
    let share = shell_quote(&share.to_string_lossy());
    let mut script = String::new();
    let mut cases: Vec<&str> = Vec::new();
    for (_, raw, ours) in PAIRS {
        for case in [raw, ours] {
            if !cases.contains(&case) {
                cases.push(case);
            }
        }
    }
    for case in cases {
        script.push_str(&format!(
            "valgrind --tool=callgrind --toggle-collect='*counted_cycles' \
             --callgrind-out-file={share}/callgrind.{case} {bench} --repeat {case} {BUFFERS} \
             >/dev/null 2>{share}/callgrind.{case}.log\n"
        ));
        for n in [BUFFERS, 2 * BUFFERS] {
            script.push_str(&format!(
                "strace -c -o {share}/strace.{case}.{n} {bench} --repeat {case} {n} >/dev/null\n"
            ));
        }
    }
    script
}

/// Reads the outputs in `share` and writes `counts.txt` and `counts.json` to `out`; returns
/// the text.
pub fn report(share: &Path, out: &Path) -> Result<String> {
    let mut text = format!(
        "per buffer, 32x32 XRGB8888 imported into vkms ({BUFFERS} buffers; user-space \
         instructions from callgrind, system calls from strace: {}-buffer run minus \
         {BUFFERS}-buffer run)\n\n",
        2 * BUFFERS
    );
    text.push_str(&format!(
        "{:<32} {:>12} {:>12} {:>9}  {:<24} {:<24}\n",
        "case", "raw instr.", "cenalloc", "added", "raw syscalls", "cenalloc syscalls"
    ));
    let mut json = Vec::new();
    for (what, raw, ours) in PAIRS {
        let (ri, oi) = (instructions(share, raw)?, instructions(share, ours)?);
        let (rs, os) = (syscalls(share, raw)?, syscalls(share, ours)?);
        text.push_str(&format!(
            "{what:<32} {ri:>12.0} {oi:>12.0} {:>+9.0}  {:<24} {:<24}\n",
            oi - ri,
            describe(&rs),
            describe(&os)
        ));
        json.push(format!(
            "{{\"case\":{what:?},\"raw_instructions\":{ri:.0},\"cenalloc_instructions\":{oi:.0},\
             \"raw_syscalls\":{},\"cenalloc_syscalls\":{}}}",
            to_json(&rs),
            to_json(&os)
        ));
    }
    std::fs::write(out.join("counts.txt"), &text).map_err(|e| e.to_string())?;
    std::fs::write(out.join("counts.json"), format!("[{}]\n", json.join(",")))
        .map_err(|e| e.to_string())?;
    Ok(text)
}

/// Instructions per buffer of `case`.
fn instructions(share: &Path, case: &str) -> Result<f64> {
    let path = share.join(format!("callgrind.{case}"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (did valgrind run?)", path.display()))?;
    let total = parse_callgrind_total(&text)
        .ok_or_else(|| format!("{}: no summary/totals line", path.display()))?;
    if total == 0 {
        return Err(format!(
            "{}: nothing collected (counted_cycles not found)",
            path.display()
        ));
    }
    Ok(total as f64 / BUFFERS as f64)
}

/// The `totals:` (or `summary:`) event count of a callgrind output file.
fn parse_callgrind_total(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// System calls per buffer of `case`, by name (only those made per buffer).
fn syscalls(share: &Path, case: &str) -> Result<BTreeMap<String, f64>> {
    let read = |n: u64| -> Result<BTreeMap<String, u64>> {
        let path = share.join(format!("strace.{case}.{n}"));
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(parse_strace_summary(&text))
    };
    let (small, big) = (read(BUFFERS)?, read(2 * BUFFERS)?);
    Ok(big
        .iter()
        .filter_map(|(name, &calls)| {
            let per =
                calls.saturating_sub(small.get(name).copied().unwrap_or(0)) as f64 / BUFFERS as f64;
            (per >= 0.5).then(|| (name.clone(), per))
        })
        .collect())
}

/// Calls per system call name from `strace -c` output.
fn parse_strace_summary(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            // % time, seconds, usecs/call, calls, [errors,] syscall
            let name = *words.last()?;
            if words.len() < 5 || name == "total" || name == "syscall" {
                return None;
            }
            words[0].parse::<f64>().ok()?;
            Some((name.to_owned(), words[3].parse().ok()?))
        })
        .collect()
}

fn describe(calls: &BTreeMap<String, f64>) -> String {
    calls
        .iter()
        .map(|(name, n)| format!("{name} {n:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn to_json(calls: &BTreeMap<String, f64>) -> String {
    let fields: Vec<String> = calls.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
    format!("{{{}}}", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_callgrind_totals() {
        let text = "events: Ir\nfn=(1) main\n3 5\n\nsummary: 2412541\ntotals: 2412541\n";
        assert_eq!(parse_callgrind_total(text), Some(2_412_541));
        assert_eq!(parse_callgrind_total("events: Ir\n"), None);
    }

    #[test]
    fn reads_strace_summaries() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ------------------
 81.77    0.412559          68      6048           ioctl
  3.54    0.017846         405        44         7 openat
------ ----------- ----------- --------- --------- ------------------
100.00    0.692132          73      9381        56 total
";
        let calls = parse_strace_summary(text);
        assert_eq!(calls.get("ioctl"), Some(&6048));
        assert_eq!(calls.get("openat"), Some(&44));
        assert_eq!(calls.len(), 2);
    }
}
