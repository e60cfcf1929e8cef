//! The `deeptrain` binary: see `deeptrain help`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match deeptrain::cli::run(&args) {
        Ok(code) => std::process::exit(code),
        Err(deeptrain::Error::Usage(msg)) => {
            eprintln!("error: {msg}");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
