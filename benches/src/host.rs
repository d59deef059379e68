//! What machine a benchmark ran on, for the reports.

/// The CPU model (`model name` of `/proc/cpuinfo`), if it can be read.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    line.split(':').nth(1).map(|m| m.trim().to_owned())
}

/// The kernel release (`/proc/sys/kernel/osrelease`), if it can be read.
pub fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned())
}
