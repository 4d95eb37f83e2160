//! mysql-agent: OCF resource agent for a MySQL/MariaDB server (ocf:ferroha:mysql).
use std::process::ExitCode;

fn main() -> ExitCode {
    ferroha::ocf::run(&ferroha::agent::mysql::MysqlAgent)
}
