import torch, sys, time
sys.path.insert(0,'.')
from model import CharTransformer, ModelConfig
torch.manual_seed(0)
m=CharTransformer(ModelConfig(vocab_size=65)).eval()
p=torch.zeros(1,1,dtype=torch.long)
m.generate(p,300,temperature=1.0,seed=0)
t=time.perf_counter(); m.generate(p,1000,temperature=1.0,seed=0); print('chars/s', 1000/(time.perf_counter()-t))
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU]) as prof:
    m.generate(p,500,temperature=1.0,seed=0)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
