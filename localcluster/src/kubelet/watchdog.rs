//! The watchdog: a forked process that kills every container process group when the process
//! that started them dies, however it dies (SIGKILL included).
//!
//! `PR_SET_PDEATHSIG` only reaches a container's leader (often `sh`); what the leader started
//! (the flow's `python`, its subprocesses) would be re-parented to init and run on. The
//! watchdog learns each group over a pipe and, when the pipe reaches end-of-file (every write
//! end closed: the parent exited, or [`Watchdog::close`]), kills the groups still registered.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The most groups the watchdog tracks at once (it cannot allocate after `fork`).
const MAX_GROUPS: usize = 4096;

/// The parent's end: the pipe to the watchdog and its pid.
#[derive(Debug)]
pub(super) struct Watchdog {
    pipe: Option<OwnedFd>,
    pid: libc::pid_t,
}

impl Watchdog {
    /// Forks the watchdog. `None` when the pipe or the fork fails (containers then rely on
    /// their leader's death signal only).
    pub(super) fn start() -> Option<Watchdog> {
        let mut fds = [0; 2];
        // SAFETY: plain syscall; close-on-exec so no container inherits either end.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return None;
        }
        // SAFETY: the fds were just created and are owned here only.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child runs `watch` only, which makes async-signal-safe calls and never
        // returns (this process may have other threads, whose locks the child must not touch).
        match unsafe { libc::fork() } {
            -1 => None,
            0 => unsafe { watch(read.as_raw_fd()) },
            pid => Some(Watchdog {
                pipe: Some(write),
                pid,
            }),
        }
    }

    /// Registers a container's process group.
    pub(super) fn add(&self, pgid: i32) {
        self.send(pgid);
    }

    /// Unregisters a group once it is gone (so a reused pid is never killed).
    pub(super) fn remove(&self, pgid: i32) {
        self.send(-pgid);
    }

    fn send(&self, value: i32) {
        if let Some(pipe) = &self.pipe {
            let bytes = value.to_ne_bytes();
            // SAFETY: a 4-byte write to a pipe is atomic (< PIPE_BUF); a failure means the
            // watchdog is gone, and nothing better can be done then.
            unsafe { libc::write(pipe.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        }
    }

    /// Ends the watchdog (it kills what is still registered) and reaps it (at most ~2 s).
    pub(super) fn close(&mut self) {
        if self.pipe.take().is_none() {
            return;
        }
        for _ in 0..400 {
            let mut status = 0;
            // SAFETY: plain syscall on our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r != 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The watchdog's whole life, in the forked child: only async-signal-safe calls.
unsafe fn watch(read: i32) -> ! {
    // Ctrl-C or a SIGTERM to the parent's process group must not end the watchdog before
    // the parent: it has to outlive it to do its work.
    let mut ignore: libc::sigaction = std::mem::zeroed();
    ignore.sa_sigaction = libc::SIG_IGN;
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGPIPE,
    ] {
        libc::sigaction(sig, &ignore, std::ptr::null_mut());
    }
    // Hold nothing of the parent's open: its pipes (a container's output, a test's stdout)
    // must see end-of-file when their real holders close them.
    libc::dup2(read, 0);
    if libc::syscall(libc::SYS_close_range, 1u32, u32::MAX, 0u32) != 0 {
        for fd in 1..65536 {
            libc::close(fd);
        }
    }
    let mut groups = [0i32; MAX_GROUPS];
    let mut count = 0usize;
    let mut buf = [0u8; 512];
    let mut carry = 0usize;
    loop {
        let n = libc::read(0, buf.as_mut_ptr().add(carry).cast(), buf.len() - carry);
        if n < 0 && *libc::__errno_location() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        let end = carry + n as usize;
        let whole = end - end % 4;
        for chunk in buf[..whole].chunks_exact(4) {
            let v = i32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if v > 0 && count < MAX_GROUPS {
                groups[count] = v;
                count += 1;
            } else if v < 0 {
                if let Some(i) = groups[..count].iter().position(|&g| g == -v) {
                    count -= 1;
                    groups[i] = groups[count];
                }
            }
        }
        buf.copy_within(whole..end, 0);
        carry = end - whole;
    }
    for &g in &groups[..count] {
        if g > 1 {
            libc::kill(-g, libc::SIGKILL);
        }
    }
    libc::_exit(0)
}
