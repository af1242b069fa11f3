//! Errors of the core. Every variant is a problem with the caller's input; the SQL layer reports
//! them as `22023 invalid_parameter_value` (see `bindings::raise`).

use std::fmt;

/// The error of every fallible core function; the message reads as a sentence about the input.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    /// An argument is outside the range the function accepts. `what` names the argument.
    OutOfRange {
        /// The argument, as the message names it (`"zoom"`, `"tile x"`, ...).
        what: &'static str,
        /// What was wrong, following `what` in the message (`"must be ..., got ..."`).
        detail: String,
    },
    /// A style option is malformed or unknown. `key` names the offending option.
    Style {
        /// The option; empty when the problem is the style object as a whole.
        key: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The input is valid but the request would need more memory than we allow.
    TooLarge {
        /// The whole message.
        detail: String,
    },
}

impl CoreError {
    /// A [`CoreError::OutOfRange`] for argument `what`.
    pub fn out_of_range(what: &'static str, detail: impl Into<String>) -> Self {
        CoreError::OutOfRange {
            what,
            detail: detail.into(),
        }
    }

    /// A [`CoreError::Style`] for option `key` (`""` for the whole style).
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

/// `Result` with [`CoreError`].
pub type CoreResult<T> = Result<T, CoreError>;
