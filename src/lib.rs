//! vu2f
