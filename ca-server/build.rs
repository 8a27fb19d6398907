//! Compiles the unit tests that need PostgreSQL (cfg `mamori_postgres`) when MAMORI_TEST_POSTGRES_URL
//! is set; otherwise they are reported as ignored, not passed.
fn main() {
    println!("cargo:rerun-if-env-changed=MAMORI_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(mamori_postgres)");
    if std::env::var_os("MAMORI_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=mamori_postgres");
    }
}
