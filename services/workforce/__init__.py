"""workforce: practitioners, certificates, employment, training and lifetime bans."""
