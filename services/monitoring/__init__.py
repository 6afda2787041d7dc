"""monitoring: cameras, CCTV events, alerts, incidents and random inspections."""
