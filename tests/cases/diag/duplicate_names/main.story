include "cast.story"

let mood = "calm"
let mood = "tense"

image market "market.jpg"
scene market { prompt = "a night market, {{ mood }}" }
scene mei { prompt = "a woman walks" }
cut final = [market, mei]
