//! OCF exit codes, verbatim from resource-agents' `heartbeat/ocf-returncodes`.

use std::fmt;
use std::process::ExitCode;

/// The exit code of an OCF action (0–9; OCF 1.1's 190/191 are not used).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcfRc {
    /// Done; for `monitor`: running.
    Success = 0,
    /// Soft error: Pacemaker recovers locally (restart).
    ErrGeneric = 1,
    /// Bad arguments: hard error on this node.
    ErrArgs = 2,
    /// Unknown or unsupported action.
    ErrUnimplemented = 3,
    /// Insufficient privileges: hard error on this node.
    ErrPerm = 4,
    /// A binary, module or device is missing on this node.
    ErrInstalled = 5,
    /// The configuration is wrong: the resource is stopped cluster-wide.
    ErrConfigured = 6,
    /// `monitor`: cleanly stopped.
    NotRunning = 7,
    /// `monitor`: running in the promoted role.
    RunningPromoted = 8,
    /// `monitor`: promoted and failed.
    FailedPromoted = 9,
}

impl OcfRc {
    /// Every code, in numeric order.
    pub const ALL: [OcfRc; 10] = [
        OcfRc::Success,
        OcfRc::ErrGeneric,
        OcfRc::ErrArgs,
        OcfRc::ErrUnimplemented,
        OcfRc::ErrPerm,
        OcfRc::ErrInstalled,
        OcfRc::ErrConfigured,
        OcfRc::NotRunning,
        OcfRc::RunningPromoted,
        OcfRc::FailedPromoted,
    ];

    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The code for a number, if it is one of 0–9.
    pub fn from_code(code: i32) -> Option<OcfRc> {
        OcfRc::ALL
            .into_iter()
            .find(|rc| i32::from(rc.code()) == code)
    }

    /// The shell name, as in `ocf-returncodes` (`OCF_ERR_CONFIGURED`, …).
    pub fn name(self) -> &'static str {
        match self {
            OcfRc::Success => "OCF_SUCCESS",
            OcfRc::ErrGeneric => "OCF_ERR_GENERIC",
            OcfRc::ErrArgs => "OCF_ERR_ARGS",
            OcfRc::ErrUnimplemented => "OCF_ERR_UNIMPLEMENTED",
            OcfRc::ErrPerm => "OCF_ERR_PERM",
            OcfRc::ErrInstalled => "OCF_ERR_INSTALLED",
            OcfRc::ErrConfigured => "OCF_ERR_CONFIGURED",
            OcfRc::NotRunning => "OCF_NOT_RUNNING",
            OcfRc::RunningPromoted => "OCF_RUNNING_MASTER",
            OcfRc::FailedPromoted => "OCF_FAILED_MASTER",
        }
    }
}

impl fmt::Display for OcfRc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.name())
    }
}

impl From<OcfRc> for ExitCode {
    fn from(rc: OcfRc) -> ExitCode {
        ExitCode::from(rc.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers are the OCF spec's; a renumbering would break every cluster.
    #[test]
    fn codes_match_ocf_returncodes() {
        let expected = [
            ("OCF_SUCCESS", 0),
            ("OCF_ERR_GENERIC", 1),
            ("OCF_ERR_ARGS", 2),
            ("OCF_ERR_UNIMPLEMENTED", 3),
            ("OCF_ERR_PERM", 4),
            ("OCF_ERR_INSTALLED", 5),
            ("OCF_ERR_CONFIGURED", 6),
            ("OCF_NOT_RUNNING", 7),
            ("OCF_RUNNING_MASTER", 8),
            ("OCF_FAILED_MASTER", 9),
        ];
        for (rc, (name, code)) in OcfRc::ALL.iter().zip(expected) {
            assert_eq!(rc.name(), name);
            assert_eq!(rc.code(), code);
            assert_eq!(OcfRc::from_code(i32::from(code)), Some(*rc));
        }
        assert_eq!(OcfRc::from_code(10), None);
        assert_eq!(OcfRc::from_code(-1), None);
    }
}
