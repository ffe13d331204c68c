#![forbid(unsafe_code)]
pub mod cli {
    pub fn main() -> i32 {
        0
    }
}
