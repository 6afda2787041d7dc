"""Infrastructure and contracts every Cradle service shares. No domain rules live here."""
