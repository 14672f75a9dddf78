pub fn run(_cli: &crate::cli::Cli, _args: &crate::cli::TopArgs) -> anyhow::Result<crate::Exit> {
    anyhow::bail!("todo")
}
