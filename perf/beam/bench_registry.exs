# registry workload, Elixir side: the same work as perf/registry.c. A unique
# Registry with partitions: System.schedulers_online() holds 10,000 integer
# keys with integer values, all registered by one holder process.
# registry_lookup: 2 processes do 2,000,000 Registry.lookup/2 calls in all
# (each checks it got [{holder, _}]), keys walking the key space by a stride
# prime to it (k := rem(k + 7919, 10_000)), from a common start to the last
# one's finish. registry_register: one process registers and unregisters
# 100,000 distinct keys (pairs/s). `quick` does a tenth of each count.
# Run as: elixir bench_registry.exs [quick]
:logger.set_primary_config(:level, :none)

defmodule BenchRegistry do
  @keys 10_000

  def lookups(_reg, _holder, _k, 0), do: :ok

  def lookups(reg, holder, k, i) do
    [{^holder, _}] = Registry.lookup(reg, k)
    lookups(reg, holder, rem(k + 7919, @keys), i - 1)
  end

  def pairs(_reg, k, stop) when k == stop, do: :ok

  def pairs(reg, k, stop) do
    {:ok, _} = Registry.register(reg, k, k)
    :ok = Registry.unregister(reg, k)
    pairs(reg, k + 1, stop)
  end

  def main(quick) do
    n_lookups = if quick, do: 200_000, else: 2_000_000
    n_regs = if quick, do: 10_000, else: 100_000
    {:ok, _} =
      Registry.start_link(keys: :unique, name: BenchReg, partitions: System.schedulers_online())

    parent = self()

    holder =
      spawn(fn ->
        for k <- 0..(@keys - 1), do: {:ok, _} = Registry.register(BenchReg, k, k)
        send(parent, :ready)

        receive do
          :stop -> :ok
        end
      end)

    receive do
      :ready -> :ok
    end

    @keys = Registry.count(BenchReg)
    per = div(n_lookups, 2)
    t0 = System.monotonic_time(:microsecond)

    for start <- [0, div(@keys, 2)] do
      spawn_link(fn ->
        lookups(BenchReg, holder, start, per)
        send(parent, :done)
      end)
    end

    for _ <- 1..2 do
      receive do
        :done -> :ok
      end
    end

    t1 = System.monotonic_time(:microsecond)
    figure("registry_lookup", n_lookups / ((t1 - t0) / 1.0e6), "ops/s")
    send(holder, :stop)

    t0 = System.monotonic_time(:microsecond)
    pairs(BenchReg, @keys, @keys + n_regs)
    t1 = System.monotonic_time(:microsecond)
    figure("registry_register", n_regs / ((t1 - t0) / 1.0e6), "pairs/s")
  end

  defp figure(name, value, unit) do
    IO.puts("FIGURE #{name} #{:erlang.float_to_binary(value, decimals: 3)} #{unit} 1")
  end
end

BenchRegistry.main("quick" in System.argv())
