include "cast.story"
include "shared/styles.story"
scene arrival { prompt = "a night market" }
