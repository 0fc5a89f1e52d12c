"""Ask the bundled SmolLM2-135M-Instruct model one question."""

import redtier

model = redtier.load_model("smollm2-135m-instruct")
print(model.chat("In one sentence, what is red-teaming a language model?"))
