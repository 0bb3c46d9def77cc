//! What the page-blob stories share: the storage service to test against, and its container.

#![allow(dead_code)]

use netherite_azure::StorageAccount;
use netherite_storage_pageblob::testing;

/// The container every story uses; each device gets a fresh prefix in it.
pub(crate) const CONTAINER: &str = "netherite-tests";

/// The account to test against (`NETHERITE_TEST_AZURITE`, a connection string), with the test
/// container created, or `None` (outside CI) to skip.
pub(crate) async fn account() -> Option<StorageAccount> {
    let text = match std::env::var("NETHERITE_TEST_AZURITE") {
        Ok(text) if !text.is_empty() => text,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("NETHERITE_TEST_AZURITE is not set: CI must run the page blob tests on Azurite")
        }
        _ => {
            eprintln!("NETHERITE_TEST_AZURITE is not set: the page blob stories are skipped");
            return None;
        }
    };
    let account = StorageAccount::parse(&text).expect("NETHERITE_TEST_AZURITE parses");
    testing::create_container(&account, CONTAINER)
        .await
        .expect("the test container can be created");
    Some(account)
}
