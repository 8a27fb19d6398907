//! One module per command group: its clap arguments and its `run`.

pub mod acme;
pub mod activate;
pub mod audit;
pub mod break_glass;
pub mod cert;
pub mod csr;
pub mod device;
pub mod enrollment;
pub mod key;
pub mod notify;
pub mod pkcs12;
pub mod renew;
pub mod request;
pub mod revocation;
pub mod session;
pub mod staff;
pub mod user;
pub mod vendor;
