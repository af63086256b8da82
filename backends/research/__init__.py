"""Research tooling: the benchmark grid run on the lab (`whimbrel bench`), the report made from
its recorded runs, and the calibration that fits the model's costs to them. Every path it reads
or writes is passed in. The product never imports it; it reaches the engine only through the
costs file `whimbrel bench costs` writes."""
