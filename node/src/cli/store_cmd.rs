//! `vidswarm add`: import a split into a node's data dir.

use std::path::Path;

use anyhow::Context;

use crate::store::Store;

pub fn add(split_dir: &Path, data: &Path) -> anyhow::Result<()> {
    let (store, _) =
        Store::open(data).with_context(|| format!("cannot open data dir {}", data.display()))?;
    let report = store
        .import_split_dir(split_dir)
        .with_context(|| format!("cannot import {}", split_dir.display()))?;
    println!("{report}");
    Ok(())
}
