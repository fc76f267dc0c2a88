//! A recording driver for task runner tests. (In progress.)
