fn main() -> std::process::ExitCode {
    mtlscope::cli::main()
}
