//! The servers' resident memory and CPU time, read from `/proc/<pid>` (by `chat-procfs`,
//! which the server's own `process_*` metrics read too).

pub use chat_procfs::{Sample, maybe_sample, sample};
