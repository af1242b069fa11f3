//! Errors of the core. Every variant is a problem with the caller's input; the SQL layer reports
//! them as `22023 invalid_parameter_value` (see `bindings::raise`).

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    /// An argument is outside the range the function accepts. `what` names the argument.
    OutOfRange { what: &'static str, detail: String },
    /// A style option is malformed or unknown. `key` names the offending option.
    Style { key: String, detail: String },
    /// The input is valid but the request would need more memory than we allow.
    TooLarge { detail: String },
}

impl CoreError {
    pub fn out_of_range(what: &'static str, detail: impl Into<String>) -> Self {
        CoreError::OutOfRange {
            what,
            detail: detail.into(),
        }
    }

    pub fn style(key: impl Into<String>, detail: impl Into<String>) -> Self {
        CoreError::Style {
            key: key.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::OutOfRange { what, detail } => write!(f, "{what} {detail}"),
            CoreError::Style { key, detail } if key.is_empty() => write!(f, "style {detail}"),
            CoreError::Style { key, detail } => write!(f, "style option \"{key}\": {detail}"),
            CoreError::TooLarge { detail } => write!(f, "{detail}"),
        }
    }
}

impl std::error::Error for CoreError {}

pub type CoreResult<T> = Result<T, CoreError>;
