fn main() {
    std::process::exit(proxy::cli::main())
}
