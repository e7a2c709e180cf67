image market "market.jpg
