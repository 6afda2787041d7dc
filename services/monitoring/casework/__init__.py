"""The casework half of monitoring: incidents and their deadlines, inspectors, 双随机 plans,
inspections and rectification, and the risk score."""
