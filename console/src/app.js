document.getElementById('app').textContent = 'remo console';
