//! Runnable samples of netherite: the hello sequence, fan-out/fan-in, entities and multi-node
//! runs. None exist yet; the package holds their place in the workspace.
