//! Typed agent errors: each variant knows its OCF exit code.
//!
//! "Not running" and "promoted" are monitor *results*, not errors (see [`super::Status`]); an
//! error is something that went wrong and carries the one-line reason Pacemaker shows
//! (`ocf-exit-reason:`).

use super::rc::OcfRc;

/// An action failed; the variant decides the exit code, the text is the exit reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// Soft failure (1): Pacemaker may retry or recover on this node.
    #[error("{0}")]
    Generic(String),
    /// Bad command-line arguments (2).
    #[error("{0}")]
    Args(String),
    /// The action is not implemented by this agent (3).
    #[error("{0}")]
    Unimplemented(String),
    /// Insufficient privileges (4).
    #[error("{0}")]
    Perm(String),
    /// Something this node needs is missing: binary, device, interface module (5).
    #[error("{0}")]
    Installed(String),
    /// The configuration is wrong and will not work anywhere (6).
    #[error("{0}")]
    Configured(String),
    /// Monitor only: the resource is promoted and has failed (9).
    #[error("{0}")]
    FailedPromoted(String),
}

impl AgentError {
    /// The exit code this error makes the action return.
    pub fn rc(&self) -> OcfRc {
        // Exhaustive on purpose: a new variant must decide its code here.
        match self {
            AgentError::Generic(_) => OcfRc::ErrGeneric,
            AgentError::Args(_) => OcfRc::ErrArgs,
            AgentError::Unimplemented(_) => OcfRc::ErrUnimplemented,
            AgentError::Perm(_) => OcfRc::ErrPerm,
            AgentError::Installed(_) => OcfRc::ErrInstalled,
            AgentError::Configured(_) => OcfRc::ErrConfigured,
            AgentError::FailedPromoted(_) => OcfRc::FailedPromoted,
        }
    }

    /// The exit reason, without the prefix.
    pub fn reason(&self) -> &str {
        match self {
            AgentError::Generic(s)
            | AgentError::Args(s)
            | AgentError::Unimplemented(s)
            | AgentError::Perm(s)
            | AgentError::Installed(s)
            | AgentError::Configured(s)
            | AgentError::FailedPromoted(s) => s,
        }
    }

    /// The same error with `context: ` in front of its reason, keeping the code.
    pub fn context(self, context: impl std::fmt::Display) -> AgentError {
        let prefix = |s: String| format!("{context}: {s}");
        match self {
            AgentError::Generic(s) => AgentError::Generic(prefix(s)),
            AgentError::Args(s) => AgentError::Args(prefix(s)),
            AgentError::Unimplemented(s) => AgentError::Unimplemented(prefix(s)),
            AgentError::Perm(s) => AgentError::Perm(prefix(s)),
            AgentError::Installed(s) => AgentError::Installed(prefix(s)),
            AgentError::Configured(s) => AgentError::Configured(prefix(s)),
            AgentError::FailedPromoted(s) => AgentError::FailedPromoted(prefix(s)),
        }
    }

    /// Map an OS error from a kernel call to the OCF code an operator expects: EPERM/EACCES
    /// mean the agent lacks privileges (4), anything else is a soft failure (1).
    pub fn from_io(what: impl std::fmt::Display, err: &std::io::Error) -> AgentError {
        let text = format!("{what}: {err}");
        match err.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => AgentError::Perm(text),
            _ => AgentError::Generic(text),
        }
    }
}

/// `map_err` adapter for kernel calls: `.map_err(io_error("adding the address"))`, with the
/// code chosen by [`AgentError::from_io`].
pub fn io_error(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> AgentError {
    move |e| AgentError::from_io(what, &e)
}

/// Result of an agent action.
pub type AgentResult<T> = Result<T, AgentError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_knows_its_code() {
        let cases = [
            (AgentError::Generic("x".into()), 1),
            (AgentError::Args("x".into()), 2),
            (AgentError::Unimplemented("x".into()), 3),
            (AgentError::Perm("x".into()), 4),
            (AgentError::Installed("x".into()), 5),
            (AgentError::Configured("x".into()), 6),
            (AgentError::FailedPromoted("x".into()), 9),
        ];
        for (err, code) in cases {
            assert_eq!(err.rc().code(), code, "{err:?}");
        }
    }

    #[test]
    fn context_keeps_the_code_and_prefixes_the_reason() {
        let err = AgentError::Installed("no such device".into()).context("eth9");
        assert_eq!(err.rc(), OcfRc::ErrInstalled);
        assert_eq!(err.reason(), "eth9: no such device");
    }

    #[test]
    fn permission_errors_map_to_err_perm() {
        let eperm = std::io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(AgentError::from_io("add", &eperm).rc(), OcfRc::ErrPerm);
        let enodev = std::io::Error::from_raw_os_error(libc::ENODEV);
        assert_eq!(AgentError::from_io("add", &enodev).rc(), OcfRc::ErrGeneric);
    }
}
