include "lib/styles.story"
element mei { frontal = "mei.png" }
