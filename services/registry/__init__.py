"""registry: the system of record for childcare facilities, their applications and Shanghai's divisions."""
