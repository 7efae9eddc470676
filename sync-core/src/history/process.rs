//! Is the process that wrote a "running" row still there?
//!
//! A pid alone is not enough: after a reboot, or on a busy host, another
//! process may hold it. On Linux a row also keeps the process's start
//! token, the boot id and the start time in clock ticks since boot
//! (`/proc/PID/stat`, field 22, proc(5)); the row's process is alive only
//! if the same pid has the same token now. Elsewhere (no /proc) the pid is
//! asked with `kill(pid, 0)`.

/// The process that wrote a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub start: Option<String>,
}

impl Process {
    /// This process.
    pub fn current() -> Process {
        let pid = std::process::id();
        Process {
            pid,
            start: start_token(pid),
        }
    }

    /// True while the process that wrote the row runs.
    pub fn is_alive(&self) -> bool {
        match &self.start {
            Some(token) => start_token(self.pid).as_deref() == Some(token.as_str()),
            None => {
                let Some(pid) = i32::try_from(self.pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                else {
                    return false;
                };
                match rustix::process::test_kill_process(pid) {
                    Ok(()) => true,
                    // It exists, under another user.
                    Err(e) => e == rustix::io::Errno::PERM,
                }
            }
        }
    }
}

/// `BOOT_ID:START_TICKS` of a process, where /proc tells.
fn start_token(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2, the command name, may hold spaces and parentheses: count
    // from the last ')'. Field 3 comes first after it, so 22 is the 20th.
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let ticks = after.split_ascii_whitespace().nth(19)?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(format!("{}:{ticks}", boot.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_child_is_not() {
        assert!(Process::current().is_alive());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let dead = Process {
            pid,
            start: start_token(pid),
        };
        child.wait().unwrap();
        assert!(!dead.is_alive());
        let reused = Process {
            start: Some("another-boot:1".into()),
            ..Process::current()
        };
        assert!(
            !reused.is_alive(),
            "a pid with another start token is another process"
        );
    }
}
