//! `razar boot`.

use crate::cli::{BootArgs, Global};
use crate::error::Result;
use crate::paths::Paths;

pub async fn run(_paths: &Paths, _global: &Global, _args: BootArgs) -> Result<u8> {
    Ok(0)
}
