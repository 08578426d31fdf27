//! Logging into the case journal. Lines are attributed by the host to the
//! plugin, step and target of the current call.

use crate::bindings::provider::irhost::plugin::host::{self, LogLevel};

pub fn trace(message: &str) {
    host::log(LogLevel::Trace, message)
}
pub fn debug(message: &str) {
    host::log(LogLevel::Debug, message)
}
pub fn info(message: &str) {
    host::log(LogLevel::Info, message)
}
pub fn warn(message: &str) {
    host::log(LogLevel::Warn, message)
}
pub fn error(message: &str) {
    host::log(LogLevel::Error, message)
}
