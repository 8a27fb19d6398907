//! Marks the PostgreSQL tests as ignored (not passed) when MAMORI_TEST_POSTGRES_URL is unset.
fn main() {
    println!("cargo:rerun-if-env-changed=MAMORI_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(mamori_postgres)");
    if std::env::var_os("MAMORI_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=mamori_postgres");
    }
}
