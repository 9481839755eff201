//! `wsd audit verify`: checks the audit log's hash chain, on the database directly.

use clap::Subcommand;

use crate::Failure;
use crate::settings::StoreSettings;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify that no audit event was edited, reordered or deleted.
    ///
    /// Exit status 0 when the chain is intact, 1 when it is broken (the output names the
    /// first broken event).
    Verify {
        #[command(flatten)]
        store: StoreSettings,
    },
    /// List an org's audit events, oldest first (API client: WSD_URL, WSD_TOKEN).
    List {
        #[command(flatten)]
        connection: crate::client::Connection,
        #[command(flatten)]
        list: crate::client_cmd::AuditList,
    },
}

pub fn run(command: AuditCommand) -> Result<(), Failure> {
    match command {
        AuditCommand::List { connection, list } => crate::client_cmd::audit(connection, list),
        AuditCommand::Verify { store } => crate::block_on(async move {
            let (store, _) = store.open(2).await?;
            let result = store.verify_audit().await;
            store.close().await;
            match result {
                Ok(v) => {
                    println!("audit log intact: {} events, newest {}", v.events, v.last_seq);
                    Ok(())
                }
                Err(e @ wsd_store::StoreError::AuditChainBroken { .. }) => {
                    println!("AUDIT LOG BROKEN: {e}");
                    Err(Failure::Broken)
                }
                Err(e) => Err(Failure::Usage(e.to_string())),
            }
        }),
    }
}
