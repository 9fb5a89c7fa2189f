//! The title `ps` shows for a child process (`logferry: InputProcess`): forked children would otherwise all show the
//! supervisor's `logferry run --config X`. The thread name (`comm`, `ps -e`, `top`) is set with `PR_SET_NAME`; the
//! command line (`ps -ef`, `ps aux`, `/proc/<pid>/cmdline`) by overwriting the argument area the kernel reads it from.

/// Why the title could not be set (the process runs on with its old title).
#[derive(Debug, thiserror::Error)]
pub enum ProcTitleError {
    #[error("cannot read the argument area from /proc/self/stat: {0}")]
    Stat(#[from] std::io::Error),
    #[error("/proc/self/stat has no arg_start/arg_end fields: {0:?}")]
    NoArgArea(String),
    #[error("prctl(PR_SET_NAME) failed: {0}")]
    SetName(std::io::Error),
}

/// Sets the process title to `logferry: <role>` and its thread name to `<role>` (at most 15 bytes are kept).
/// Call it in a child right after fork, before it starts threads.
pub fn set_process_title(role: &str) -> Result<(), ProcTitleError> {
    set_thread_name(role)?;
    overwrite_command_line(&format!("logferry: {role}"))
}

fn set_thread_name(name: &str) -> Result<(), ProcTitleError> {
    let mut comm = [0u8; 16];
    let len = name.len().min(15);
    comm[..len].copy_from_slice(&name.as_bytes()[..len]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from a valid pointer.
    let rc = unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr() as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        return Err(ProcTitleError::SetName(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The argument area `[arg_start, arg_end)` of this process (fields 48 and 49 of `/proc/self/stat`).
fn argument_area() -> Result<(usize, usize), ProcTitleError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after `comm` (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<usize>().ok());
    match (field(48), field(49)) {
        (Some(start), Some(end)) if start != 0 && end > start => Ok((start, end)),
        _ => Err(ProcTitleError::NoArgArea(stat)),
    }
}

/// Writes `title` over the original arguments (cut to their length) and clears the rest of the area.
fn overwrite_command_line(title: &str) -> Result<(), ProcTitleError> {
    let (start, end) = argument_area()?;
    let size = end - start;
    let len = title.len().min(size - 1);
    // SAFETY: [arg_start, arg_end) is this process's own argument strings, mapped and writable for its whole life
    // (the stack's top); nothing in this freshly forked process reads them any more (arguments were parsed before
    // fork). The last byte stays NUL, so the kernel reads exactly the new title.
    unsafe {
        let area = start as *mut u8;
        std::ptr::copy_nonoverlapping(title.as_ptr(), area, len);
        std::ptr::write_bytes(area.add(len), 0, size - len);
    }
    Ok(())
}
