//! Detection: rules, their compilation to SQL over time windows, watermarks and alerts.
