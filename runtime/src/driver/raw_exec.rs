//! The raw_exec driver: runs a task as a plain process on the node. (In progress.)
