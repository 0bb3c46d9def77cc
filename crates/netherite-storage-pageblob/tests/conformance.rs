//! The core's `LogDevice` conformance suite, run against page-blob devices on Azurite (or any
//! storage account `NETHERITE_TEST_AZURITE` names).

#![cfg(feature = "azurite")]

mod support;

use netherite_core::device::conformance;
use netherite_storage_pageblob::PageBlobOptions;
use netherite_storage_pageblob::testing::PageBlobFixture;

/// Every rule of the contract holds with the default layout (1 GiB segments), and no check is
/// skipped.
#[tokio::test]
async fn default_layout_conforms() {
    let Some(account) = support::account().await else {
        return;
    };
    let options = PageBlobOptions::default();
    let report =
        conformance::run(|| PageBlobFixture::new(&account, support::CONTAINER, options.clone()))
            .await;
    assert!(report.skipped().is_empty(), "{report}");
    println!("{report}");
}

/// Every rule holds when each 512-byte page is a segment of its own, so that every multi-page
/// write and read of the suite crosses segment boundaries and creates segments as it goes.
#[tokio::test]
async fn one_page_segments_conform() {
    let Some(account) = support::account().await else {
        return;
    };
    let options = PageBlobOptions::default().with_segment_bytes(512);
    let report =
        conformance::run(|| PageBlobFixture::new(&account, support::CONTAINER, options.clone()))
            .await;
    assert!(report.skipped().is_empty(), "{report}");
}
