//! Loading one program and attaching it to its tracepoints: the one loop
//! every probe group (process lifecycle, syscalls, io_uring, compat) uses.

use aya::{
    Ebpf,
    programs::{ProgramError, RawTracePoint, TracePoint},
};

use super::error::AttachError;

/// Where one program attaches.
pub enum Hooks<'a> {
    /// Raw tracepoints, by name (`sched_process_exec`, `sys_enter`).
    Raw(&'a [&'a str]),
    /// Classic tracepoints of one category (`syscalls`: `sys_enter_openat`, …).
    Tracepoints {
        category: &'a str,
        events: &'a [&'a str],
    },
}

/// Loads `program` (the kernel verifies it once) and attaches it to every hook.
pub fn load_and_attach(
    ebpf: &mut Ebpf,
    program: &str,
    hooks: Hooks<'_>,
) -> Result<(), AttachError> {
    let prog = ebpf
        .program_mut(program)
        .ok_or_else(|| AttachError::Missing {
            program: program.into(),
        })?;
    let wrong_type = |expected| {
        move |source| AttachError::WrongType {
            program: program.into(),
            expected,
            source: Box::new(source),
        }
    };
    let rejected = |source| AttachError::Rejected {
        program: program.into(),
        source: Box::new(source),
    };
    let attach = |target: String| {
        move |source: ProgramError| AttachError::Attach {
            program: program.into(),
            target,
            source: Box::new(source),
        }
    };
    match hooks {
        Hooks::Raw(names) => {
            let p: &mut RawTracePoint = prog.try_into().map_err(wrong_type("raw tracepoint"))?;
            p.load().map_err(rejected)?;
            for name in names {
                p.attach(name)
                    .map_err(attach(format!("raw tracepoint {name}")))?;
            }
        }
        Hooks::Tracepoints { category, events } => {
            let p: &mut TracePoint = prog.try_into().map_err(wrong_type("tracepoint"))?;
            p.load().map_err(rejected)?;
            for event in events {
                p.attach(category, event)
                    .map_err(attach(format!("tracepoint {category}:{event}")))?;
            }
        }
    }
    Ok(())
}
