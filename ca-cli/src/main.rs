//! `ca-cli`: Mamori's command line for security officers, vendors, device enrollers and
//! auditors. This first version covers the local key work that never needs the server.

fn main() {
    println!("ca-cli {}", env!("CARGO_PKG_VERSION"));
}
