// The openai npm SDK against a live `tunepipe serve`: a chat completion, a stream, a tool call,
// the SDK's own tool loop, structured output with the zod helper, the Responses API (a call, a
// stream, a parse), embeddings and a bad key's error. Prints one JSON object of what each returned, for
// tests/clients/test_node_openai.py to check.
//
// Usage: node client.mjs <base_url> <api_key> <model> <agent_model> <embedding_model>

import OpenAI from "openai";
import { zodResponseFormat, zodTextFormat } from "openai/helpers/zod";
import { VERSION } from "openai/version";
import { z } from "zod";

const [baseURL, apiKey, model, agentModel, embeddingModel] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const out = { sdk_version: VERSION };

const user = (content) => [{ role: "user", content }];

const completion = await client.chat.completions.create({
  model,
  messages: user("hello from node"),
});
out.completion = {
  text: completion.choices[0].message.content,
  finish_reason: completion.choices[0].finish_reason,
  total_tokens: completion.usage?.total_tokens ?? null,
};

const stream = await client.chat.completions.create({
  model,
  messages: user("streamed from node"),
  stream: true,
  stream_options: { include_usage: true },
});
const deltas = [];
let streamUsage = null;
for await (const chunk of stream) {
  const piece = chunk.choices[0]?.delta?.content;
  if (piece) deltas.push(piece);
  if (chunk.usage) streamUsage = chunk.usage.total_tokens;
}
out.stream = { deltas, text: deltas.join(""), total_tokens: streamUsage };

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city.",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    },
  },
};
const called = await client.chat.completions.create({
  model,
  messages: user("weather in Oslo"),
  tools: [weather],
});
const call = called.choices[0].message.tool_calls[0];
out.tools = {
  finish_reason: called.choices[0].finish_reason,
  name: call.function.name,
  arguments: JSON.parse(call.function.arguments),
};

// The SDK runs the tool and sends its answer back until the model answers in text.
const runner = client.chat.completions.runTools({
  model: agentModel,
  messages: user("Bergen"),
  tools: [
    {
      type: "function",
      function: {
        name: "get_weather",
        description: "The weather in a city.",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        parse: JSON.parse,
        function: ({ city }) => `sunny in ${city}`,
      },
    },
  ],
});
out.run_tools = { final: await runner.finalContent() };

const Person = z.object({ name: z.string(), age: z.number().int(), tags: z.array(z.string()) });
const parsed = await client.chat.completions.parse({
  model,
  messages: user("Ada"),
  response_format: zodResponseFormat(Person, "person"),
});
out.structured = parsed.choices[0].message.parsed;

const created = await client.responses.create({ model, input: "hello responses", instructions: "Be brief." });
out.responses = { id: created.id, status: created.status, text: created.output_text };

const kinds = [];
const rstream = client.responses.stream({ model, input: "streamed responses" });
for await (const event of rstream) kinds.push(event.type);
const final = await rstream.finalResponse();
out.responses_stream = { kinds, text: final.output_text };

const rparsed = await client.responses.parse({
  model,
  input: "Grace",
  text: { format: zodTextFormat(Person, "person") },
});
out.responses_structured = rparsed.output_parsed;

// The SDK asks for base64 vectors unless told otherwise, and decodes them itself.
const embedded = await client.embeddings.create({ model: embeddingModel, input: ["hello vectors", "two"] });
out.embeddings = {
  vectors: embedded.data.map((d) => d.embedding),
  prompt_tokens: embedded.usage.prompt_tokens,
};

try {
  await new OpenAI({ baseURL, apiKey: "not-a-key", maxRetries: 0 }).models.list();
  out.bad_key = null;
} catch (err) {
  out.bad_key = { status: err.status, type: err.type ?? null, code: err.code ?? null };
}

console.log(JSON.stringify(out));
