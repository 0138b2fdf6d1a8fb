//! Human rendering (placeholder).
