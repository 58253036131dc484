//! The `mtlscope` binary: everything lives in the library; see `mtlscope::cli`.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mtlscope::cli::main()
}
