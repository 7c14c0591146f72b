# stream workload (BENCHMARKS.md), BEAM side: Task.async_stream over 200,000
# items (20,000 when `quick` is given), each mapped to x * 2, max_concurrency 2,
# results consumed in order and summed (checked). stream_items is items/s.
# Run as: elixir bench_stream.exs [quick]
:logger.set_primary_config(:level, :none)
n = if "quick" in System.argv(), do: 20_000, else: 200_000
t0 = System.monotonic_time(:microsecond)

sum =
  1..n
  |> Task.async_stream(fn x -> x * 2 end, max_concurrency: 2)
  |> Enum.reduce(0, fn {:ok, v}, acc -> acc + v end)

t1 = System.monotonic_time(:microsecond)
^sum = n * (n + 1)
rate = n / ((t1 - t0) / 1.0e6)
IO.puts("FIGURE stream_items #{:erlang.float_to_binary(rate, decimals: 3)} items/s 1")
