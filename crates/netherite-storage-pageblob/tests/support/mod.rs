//! What the page-blob stories share: the storage service to test against, and its container.

#![allow(dead_code)]

use netherite_azure::StorageAccount;
use netherite_storage_pageblob::testing;

/// The container every story uses; each device gets a fresh prefix in it.
pub(crate) const CONTAINER: &str = "netherite-tests";

/// The account to test against (`NETHERITE_TEST_AZURITE`, a connection string), with the test
/// container created, or `None` (outside CI) to skip.
pub(crate) async fn account() -> Option<StorageAccount> {
    let what = "the page blob stories on Azurite";
    let text = netherite_core::conformance::outside_service("NETHERITE_TEST_AZURITE", what)?;
    let account = StorageAccount::parse(&text).expect("NETHERITE_TEST_AZURITE parses");
    testing::create_container(&account, CONTAINER)
        .await
        .expect("the test container can be created");
    Some(account)
}
