//! placeholder

use crate::util::R;

pub fn main(_args: &[String]) -> R<()> {
    Err("not built yet".into())
}
